package module

import (
	"fmt"
	"strings"
)

// NameTaken reports whether name is among names, ignoring case: module
// instance names are unique in an organisation, since the analyst tells
// results apart by them.
func NameTaken(name string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// FreeName returns name when it is not taken, or else the first of
// "name 2", "name 3"… that is not.
func FreeName(name string, names []string) string {
	free := name
	for n := 2; NameTaken(free, names); n++ {
		free = fmt.Sprintf("%s %d", name, n)
	}
	return free
}
