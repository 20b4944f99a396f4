package config

import (
	"fmt"
	"os"
)

// EnvDataDir names the data directory when neither --data-dir nor the file does.
const EnvDataDir = "DREXTRACT_DATA_DIR"

// Settings with a precedence: a flag beats an environment variable, which beats
// schedules.yaml, which beats the default.
const (
	SettingBaseURL = "api.base_url"
	SettingTokens  = "api.tokens"
	SettingDataDir = "store.data_dir"
)

// Origin says where an effective setting came from.
type Origin struct {
	Kind string // "flag", "env", "file" or "default"
	Name string // the flag, the variable, or FILE:LINE
}

func (o Origin) String() string {
	if o.Name == "" {
		return o.Kind
	}
	return o.Kind + " " + o.Name
}

// Overrides are the command line's settings; "" means the flag was not given.
type Overrides struct {
	BaseURL string // --base-url
	DataDir string // --data-dir
}

// Resolve applies the precedence flag > environment > file > default to the base URL,
// the tokens and the data directory, and records where each came from (Origins). It is
// called once, after Load or Default, by whoever knows the flags.
//
// Tokens: DATORAMA_TOKEN (with DATORAMA_TOKEN_2, _3, …) set in the environment wins over
// the file's api.tokens; there is no token flag, since a flag's value shows in the
// process list.
func (c *Config) Resolve(o Overrides) { c.resolve(o, os.LookupEnv) }

func (c *Config) resolve(o Overrides, lookupEnv func(string) (string, bool)) {
	if c.Origins == nil {
		c.Origins = map[string]Origin{}
	}
	env := func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		return v, ok && v != ""
	}
	fileKey := func(keys ...string) (Origin, bool) {
		for _, k := range keys {
			if c.has(k) {
				return Origin{Kind: "file", Name: fmt.Sprintf("%s:%d", c.Path, c.line(k))}, true
			}
		}
		return Origin{}, false
	}

	switch v, ok := env(EnvBaseURL); {
	case o.BaseURL != "":
		c.API.BaseURL = o.BaseURL
		c.Origins[SettingBaseURL] = Origin{Kind: "flag", Name: "--base-url"}
	case ok:
		c.API.BaseURL = v
		c.Origins[SettingBaseURL] = Origin{Kind: "env", Name: EnvBaseURL}
	default:
		if from, ok := fileKey("api.base_url", "api.region"); ok {
			c.Origins[SettingBaseURL] = from
		} else {
			c.API.BaseURL = DefaultBaseURL
			c.Origins[SettingBaseURL] = Origin{Kind: "default"}
		}
	}

	if _, ok := env(EnvToken); ok {
		c.defaultAPI = true
		c.Origins[SettingTokens] = Origin{Kind: "env", Name: EnvToken}
	} else if from, ok := fileKey("api.tokens"); ok {
		c.Origins[SettingTokens] = from
	} else {
		c.Origins[SettingTokens] = Origin{Kind: "default", Name: EnvToken}
	}

	switch v, ok := env(EnvDataDir); {
	case o.DataDir != "":
		c.Store.DataDir = o.DataDir
		c.Origins[SettingDataDir] = Origin{Kind: "flag", Name: "--data-dir"}
	case ok:
		c.Store.DataDir = v
		c.Origins[SettingDataDir] = Origin{Kind: "env", Name: EnvDataDir}
	default:
		if from, ok := fileKey("store.data_dir"); ok {
			c.Origins[SettingDataDir] = from
		} else {
			// ./data next to the file (applyDefaults), or in the working directory.
			c.Origins[SettingDataDir] = Origin{Kind: "default"}
		}
	}
}
