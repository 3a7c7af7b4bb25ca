#!/bin/sh
# The one cargo command that builds the release binary: the Dockerfile runs it
# (twice: once on stub sources to cache the dependencies, once on the real ones)
# and CI runs it too (deploy/check-image-build.sh), so the two cannot drift.
set -eu
exec cargo build --release --locked --bin wxretain
