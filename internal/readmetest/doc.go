// Package readmetest checks that README.md stays true: its quick-start
// commands run and show what it says, and its test command is the one CI
// runs.
package readmetest
