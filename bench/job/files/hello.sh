#!/bin/sh
# A stand-in for the application's entry point.
echo "hello from $(hostname) $*"
