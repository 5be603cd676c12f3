#!/bin/sh
# A helper script the workflow calls from a shell: rule.
echo "tool sees scale $(cat conf/scale.txt)"
