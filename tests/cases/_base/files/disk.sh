#!/bin/sh
df -h /
