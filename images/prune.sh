#!/usr/bin/env bash
# Drop superseded builds of this tag's images: untagged, unused by any container, and
# carrying the label of this tag (org.hatestbed.tag=TAG, set by build.sh). Another
# testbed's images (another tag) are never touched, nor layers still used by the
# current images, the build cache or any container.
#   images/prune.sh TAG
set -euo pipefail
tag=${1:?usage: images/prune.sh TAG}
docker image prune -f --filter "label=org.hatestbed.tag=$tag" >/dev/null
