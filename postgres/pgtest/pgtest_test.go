package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/drextract/drextract/postgres/pgtest"
)

// A cluster starts, takes queries over TCP with its password, refuses a wrong one, and
// stops.
func TestStart(t *testing.T) {
	s := pgtest.Start(t)
	ctx := context.Background()
	db := s.Database(t)
	conn, err := pgx.Connect(ctx, s.DSN(db))
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, s.Log())
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if _, err := pgx.Connect(ctx, strings.Replace(s.DSN(db), s.Password, "wrong", 1)); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	out, err := s.Psql(ctx, db, "", "-At", "-c", "select 40 + 2")
	if err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("psql: %q, %v", out, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, s.DSN(db)); err == nil {
		t.Fatal("connected to a stopped server")
	}
	t.Logf("PostgreSQL %s", v)
}
