module afterlife.dev/functions/echo

go 1.26
