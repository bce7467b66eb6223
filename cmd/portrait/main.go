// Command portrait runs Portrait: the API server, the demo, and the tools
// for catalogs, logs and audits. See README.md.
package main

import "os"

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }
