module afterlife.dev/examples/echo

go 1.26
