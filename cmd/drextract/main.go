// Command drextract crawls a Datorama account into DuckDB and drives bulk actions.
package main

import (
	"os"

	"github.com/drextract/drextract/cli"
)

func main() { os.Exit(cli.Do(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
