package swarm

import (
	"fmt"
	"regexp"
)

func sprint(v any) string { return fmt.Sprintf("%#v", v) }

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }
