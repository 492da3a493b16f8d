#!/bin/sh
# Remove files of the demo's scratch directory that are older than a day.
mkdir -p /tmp/runner-demo
find /tmp/runner-demo -type f -mtime +1 -print -delete
