#!/bin/sh
# Stands in for a Catch binary in "unit: the test-name check catches ...": prints the names a
# binary would list, one of them with an unbalanced '[' and one that ctest does not know.
printf '%s\n' "a name ctest never registered" "a name with an unbalanced [bracket"
