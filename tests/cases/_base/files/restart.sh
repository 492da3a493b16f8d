#!/bin/sh
echo restarting
