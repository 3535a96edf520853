package optim

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidateFillsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"sgd untouched", Config{Name: SGD, LR: 0.1},
			Config{Name: SGD, LR: 0.1, Schedule: Schedule{Kind: Constant}}},
		{"adam", Config{Name: Adam, LR: 1e-3},
			Config{Name: Adam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, Schedule: Schedule{Kind: Constant}}},
		{"adam keeps zero decay", Config{Name: Adam, LR: 1e-3, Beta2: 0.95},
			Config{Name: Adam, LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Epsilon: 1e-8, Schedule: Schedule{Kind: Constant}}},
		{"adamw decay", Config{Name: AdamW, LR: 1e-3},
			Config{Name: AdamW, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01, Schedule: Schedule{Kind: Constant}}},
		{"rmsprop", Config{Name: RMSprop, LR: 1e-2, Momentum: 0.5},
			Config{Name: RMSprop, LR: 1e-2, Momentum: 0.5, Alpha: 0.99, Epsilon: 1e-8, Schedule: Schedule{Kind: Constant}}},
		{"step gamma", Config{Name: SGD, LR: 0.1, Schedule: Schedule{Kind: StepDecay, StepSize: 30}},
			Config{Name: SGD, LR: 0.1, Schedule: Schedule{Kind: StepDecay, StepSize: 30, Gamma: 0.1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Validate filled\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // the whole message
	}{
		{"negative lr", Config{Name: SGD, LR: -1}, "optim: lr must be > 0 and finite, got -1"},
		{"zero lr", Config{Name: SGD}, "optim: lr must be > 0 and finite, got 0"},
		{"nan lr", Config{Name: SGD, LR: math.NaN()}, "optim: lr must be > 0 and finite, got NaN"},
		{"inf lr", Config{Name: SGD, LR: math.Inf(1)}, "optim: lr must be > 0 and finite, got +Inf"},
		{"unknown name", Config{Name: "lion", LR: 1}, `optim: name must be one of sgd, adam, adamw, rmsprop, got "lion"`},
		{"empty name", Config{LR: 1}, `optim: name must be one of sgd, adam, adamw, rmsprop, got ""`},
		{"momentum 1", Config{Name: SGD, LR: 1, Momentum: 1}, "optim: momentum must be in [0, 1), got 1"},
		{"negative momentum", Config{Name: RMSprop, LR: 1, Momentum: -0.1}, "optim: momentum must be in [0, 1), got -0.1"},
		{"nesterov without momentum", Config{Name: SGD, LR: 1, Nesterov: true}, "optim: nesterov needs momentum > 0"},
		{"momentum on adam", Config{Name: Adam, LR: 1, Momentum: 0.9}, "optim: momentum is not used by adam"},
		{"nesterov on rmsprop", Config{Name: RMSprop, LR: 1, Nesterov: true}, "optim: nesterov is not used by rmsprop"},
		{"beta1 on sgd", Config{Name: SGD, LR: 1, Beta1: 0.9}, "optim: beta1 is not used by sgd"},
		{"beta2 on rmsprop", Config{Name: RMSprop, LR: 1, Beta2: 0.9}, "optim: beta2 is not used by rmsprop"},
		{"epsilon on sgd", Config{Name: SGD, LR: 1, Epsilon: 1e-8}, "optim: epsilon is not used by sgd"},
		{"alpha on adamw", Config{Name: AdamW, LR: 1, Alpha: 0.9}, "optim: alpha is not used by adamw"},
		{"beta1 too big", Config{Name: Adam, LR: 1, Beta1: 1}, "optim: beta1 must be in [0, 1), got 1"},
		{"beta2 negative", Config{Name: AdamW, LR: 1, Beta2: -0.5}, "optim: beta2 must be in [0, 1), got -0.5"},
		{"alpha too big", Config{Name: RMSprop, LR: 1, Alpha: 1.5}, "optim: alpha must be in [0, 1), got 1.5"},
		{"negative epsilon", Config{Name: Adam, LR: 1, Epsilon: -1}, "optim: epsilon must be >= 0 and finite, got -1"},
		{"negative weight decay", Config{Name: SGD, LR: 1, WeightDecay: -1}, "optim: weight_decay must be >= 0 and finite, got -1"},
		{"negative clip", Config{Name: SGD, LR: 1, ClipNorm: -1}, "optim: clip_norm must be >= 0 and finite, got -1"},
		{"unknown schedule", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: "linear"}}, `optim: schedule.kind must be one of constant, step, cosine, got "linear"`},
		{"negative warmup", Config{Name: SGD, LR: 1, Schedule: Schedule{Warmup: -1}}, "optim: schedule.warmup_steps must be >= 0, got -1"},
		{"step without size", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: StepDecay}}, "optim: schedule.step_size must be > 0 for step, got 0"},
		{"gamma above 1", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: StepDecay, StepSize: 1, Gamma: 2}}, "optim: schedule.gamma must be in (0, 1], got 2"},
		{"min_lr on step", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: StepDecay, StepSize: 1, MinLR: 0.1}}, "optim: schedule.min_lr is not used by step"},
		{"gamma on constant", Config{Name: SGD, LR: 1, Schedule: Schedule{Gamma: 0.5}}, "optim: schedule: step_size, gamma and min_lr are not used by constant"},
		{"step_size on cosine", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: Cosine, StepSize: 3}}, "optim: schedule: step_size and gamma are not used by cosine"},
		{"negative min_lr", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: Cosine, MinLR: -1}}, "optim: schedule.min_lr must be >= 0 and finite, got -1"},
		{"min_lr above lr", Config{Name: SGD, LR: 1, Schedule: Schedule{Kind: Cosine, MinLR: 2}}, "optim: schedule.min_lr must be <= lr (1), got 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			err := cfg.Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			if _, err := New(tc.cfg, 1); err == nil || err.Error() != tc.want {
				t.Fatalf("New() error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNewRejectsNegativeSize(t *testing.T) {
	_, err := New(Config{Name: SGD, LR: 1}, -1)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "got -1") {
		t.Fatalf("New(-1) error = %v", err)
	}
}

// TestConfigFieldNames pins the lower_snake names a job file uses.
func TestConfigFieldNames(t *testing.T) {
	const doc = `{"name":"adamw","lr":0.001,"beta1":0.8,"beta2":0.95,"epsilon":1e-6,
		"weight_decay":0.1,"clip_norm":1,"momentum":0.5,"nesterov":true,"alpha":0.9,
		"schedule":{"kind":"cosine","warmup_steps":10,"step_size":7,"gamma":0.5,"min_lr":1e-5}}`
	var got Config
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Name: AdamW, LR: 0.001, Beta1: 0.8, Beta2: 0.95, Epsilon: 1e-6,
		WeightDecay: 0.1, ClipNorm: 1, Momentum: 0.5, Nesterov: true, Alpha: 0.9,
		Schedule: Schedule{Kind: Cosine, Warmup: 10, StepSize: 7, Gamma: 0.5, MinLR: 1e-5},
	}
	if got != want {
		t.Fatalf("decoded\n %+v\nwant\n %+v", got, want)
	}
}
