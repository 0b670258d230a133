package main

import (
	"testing"

	"github.com/hibiken/asynq"
)

func TestOneLogLevelDrivesSlogAndAsynq(t *testing.T) {
	for level, want := range map[string]asynq.LogLevel{
		"": asynq.InfoLevel, "info": asynq.InfoLevel, "DEBUG": asynq.DebugLevel,
		"warn": asynq.WarnLevel, "warning": asynq.WarnLevel, "error": asynq.ErrorLevel,
	} {
		if got := asynqLevel(logLevel(level)); got != want {
			t.Errorf("log.level %q: asynq gets %v, want %v", level, got, want)
		}
	}
	if _, err := parseLevel("loud"); err == nil {
		t.Error(`parseLevel("loud") accepted`)
	}
}
