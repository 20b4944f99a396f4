package load

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func vmHWM() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM") || strings.HasPrefix(l, "VmRSS") {
			fmt.Print(strings.Join(strings.Fields(l), " "), "  ")
		}
	}
	return ""
}

func TestRSSExperiment(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	for _, set := range strings.Split(os.Getenv("SETS"), ";") {
		if set != "" {
			must(t, func() error { _, err := s.db.Exec(set); return err }())
		}
	}
	w := time.Now()
	for p := 0; p < 600; p++ {
		must(t, s.Write(ctx, 1, benchPage(p, 1000, "SUCCESS")))
		if p%200 == 199 {
			vmHWM()
			fmt.Println(p+1, time.Since(w))
		}
	}
}
