// Package worker guards asynq task handlers with slotguard semaphores.
package worker
