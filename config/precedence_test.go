package config

import (
	"path/filepath"
	"testing"
)

// TestResolvePrecedence: for the base URL, the tokens and the data directory, a flag
// beats the environment, which beats the file, which beats the default; each setting
// says where it came from.
func TestResolvePrecedence(t *testing.T) {
	const withAll = `version: 1
api:
  base_url: https://api-eu.datorama.com
  tokens:
    - file: token.txt
store:
  data_dir: /srv/drx
`
	const bare = "version: 1\n"
	dir := t.TempDir()
	file := filepath.Join(dir, "schedules.yaml")
	type want struct {
		baseURL, baseFrom string
		envTokens         bool
		tokensFrom        string
		dataDir, dataFrom string
	}
	for _, tc := range []struct {
		name string
		doc  string
		env  map[string]string
		o    Overrides
		want want
	}{
		{
			name: "file beats default",
			doc:  withAll,
			want: want{"https://api-eu.datorama.com", "file " + file + ":3", false, "file " + file + ":4", "/srv/drx", "file " + file + ":7"},
		},
		{
			name: "environment beats file",
			doc:  withAll,
			env:  map[string]string{EnvBaseURL: "http://127.0.0.1:8080", EnvToken: "dato-api-x", EnvDataDir: "/var/lib/drx"},
			want: want{"http://127.0.0.1:8080", "env " + EnvBaseURL, true, "env " + EnvToken, "/var/lib/drx", "env " + EnvDataDir},
		},
		{
			name: "flag beats environment",
			doc:  withAll,
			env:  map[string]string{EnvBaseURL: "http://127.0.0.1:8080", EnvDataDir: "/var/lib/drx"},
			o:    Overrides{BaseURL: "http://127.0.0.1:9090", DataDir: "/tmp/d"},
			want: want{"http://127.0.0.1:9090", "flag --base-url", false, "file " + file + ":4", "/tmp/d", "flag --data-dir"},
		},
		{
			name: "an empty variable counts as unset",
			doc:  withAll,
			env:  map[string]string{EnvBaseURL: "", EnvToken: ""},
			want: want{"https://api-eu.datorama.com", "file " + file + ":3", false, "file " + file + ":4", "/srv/drx", "file " + file + ":7"},
		},
		{
			name: "defaults",
			doc:  bare,
			want: want{DefaultBaseURL, "default", true, "default " + EnvToken, filepath.Join(dir, "data"), "default"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			c, errs := decode(file, []byte(tc.doc), lookup)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			c.Path = file
			c.resolve(tc.o, lookup)
			got := want{c.API.BaseURL, c.Origins[SettingBaseURL].String(), c.defaultAPI, c.Origins[SettingTokens].String(),
				c.Store.DataDir, c.Origins[SettingDataDir].String()}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
