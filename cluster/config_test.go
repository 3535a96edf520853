package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPresetsAreValid(t *testing.T) {
	for name, c := range map[string]Config{"default": DefaultConfig(), "local": LocalConfig()} {
		if err := c.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLocalConfigDetectsFailuresUnderASecond(t *testing.T) {
	local, lan := LocalConfig(), DefaultConfig()
	if b := local.FailureDetectionBound(3); b >= time.Second {
		t.Errorf("LocalConfig bound for 3 nodes: %v, want under 1 s", b)
	}
	if local.FailureDetectionBound(3) >= lan.FailureDetectionBound(3) {
		t.Errorf("LocalConfig is not faster than DefaultConfig")
	}
	if local.FailureDetectionBound(100) <= local.FailureDetectionBound(3) {
		t.Errorf("bound does not grow with the cluster")
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"BindAddr", func(c *Config) { c.BindAddr = "" }},
		{"BindPort", func(c *Config) { c.BindPort = 70000 }},
		{"AdvertisePort", func(c *Config) { c.AdvertisePort = -1 }},
		{"RejoinInterval", func(c *Config) { c.RejoinInterval = 0 }},
		{"JoinRetryInterval", func(c *Config) { c.JoinRetryInterval = -time.Second }},
		{"ProbeInterval", func(c *Config) { c.ProbeInterval = 0 }},
		{"ProbeTimeout", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }},
		{"SuspicionMult", func(c *Config) { c.SuspicionMult = 0 }},
		{"SuspicionMaxTimeoutMult", func(c *Config) { c.SuspicionMaxTimeoutMult = 0 }},
		{"GossipInterval", func(c *Config) { c.GossipInterval = 0 }},
		{"PushPullInterval", func(c *Config) { c.PushPullInterval = 0 }},
		{"TCPTimeout", func(c *Config) { c.TCPTimeout = 0 }},
	}
	for _, tc := range cases {
		c := LocalConfig()
		tc.edit(&c)
		err := c.validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+" ") {
			t.Errorf("%s: %v, want ErrInvalidConfig naming the field", tc.field, err)
		}
		if _, err := Start(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Start with bad %s: %v, want ErrInvalidConfig", tc.field, err)
		}
	}
}
