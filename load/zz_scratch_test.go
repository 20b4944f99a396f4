package load

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestZZScratchTiming(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		must(t, s.WriteBatches(ctx, 1, []Batch{benchPage(i, 800, "SUCCESS")}))
	}
	c := s.wconn
	ex := func(q string, args ...any) {
		if _, err := c.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(q, err)
		}
	}
	ex("SET threads = " + os.Getenv("ZZ_THREADS"))
	var pages []Batch
	for i := 0; i < 300; i++ {
		pages = append(pages, benchPage(1000+i, 100, "SUCCESS"))
	}
	os.WriteFile("/tmp/wp_prof/ready", []byte("1"), 0o644)
	st, cpu := time.Now(), cpuTime()
	for i := range pages {
		must(t, s.WriteBatches(ctx, 1, pages[i:i+1]))
	}
	t.Logf("write 100: wall %v cpu %v", time.Since(st)/300, (cpuTime()-cpu)/300)
}
