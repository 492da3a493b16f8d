#!/bin/sh
# Print disk usage; exit 1 when a filesystem is fuller than $1 percent (default 90).
limit=${1:-90}
df -P | awk -v limit="$limit" 'NR > 1 { sub("%", "", $5); if ($5 + 0 > limit) { print "full: " $6 " " $5 "%"; bad = 1 } }
  END { exit bad }'
df -hP /
