#!/usr/bin/env python3
"""A cleave cache helper (protocol 1) that keeps entries in a directory.

    CLEAVE_HELPER_DIR=/shared/cleave-entries cleave build --cache-helper dir-helper.py ...

`lookup` answers with the entry's directory when it is there; `store` copies
the portable entry cleave hands over into the directory, under its key, and
says where it went. A shared mount makes this a cache for every machine
that mounts it. See docs/cache-helpers.md.
"""

import json
import os
import re
import shutil
import sys


def main():
    verb = sys.argv[1] if len(sys.argv) > 1 else ""
    request = json.load(sys.stdin)
    if request.get("protocol") != 1:
        sys.exit(f"protocol {request.get('protocol')} is not 1")
    key = request["key"]
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        sys.exit(f"not a key: {key!r}")
    root = os.environ.get("CLEAVE_HELPER_DIR")
    if not root:
        sys.exit("CLEAVE_HELPER_DIR is not set")
    home = os.path.join(root, key)
    if verb == "lookup":
        if os.path.isfile(os.path.join(home, "entry.json")):
            answer = {"found": True, "entry": home, "mode": "in-place"}
        else:
            answer = {"found": False}
    elif verb == "store":
        replace = request.get("replace", False)
        if replace or not os.path.isdir(home):
            os.makedirs(root, exist_ok=True)
            # Copied beside its final name, then renamed: a reader never
            # sees half an entry, and of two writers the first one wins,
            # unless the later one replaces (a compile manifest that grew).
            partial = f"{home}.partial-{os.getpid()}"
            shutil.copytree(request["entry"], partial)
            if replace and os.path.isdir(home):
                old = f"{home}.old-{os.getpid()}"
                try:
                    os.rename(home, old)
                    shutil.rmtree(old, ignore_errors=True)
                except OSError:
                    pass
            try:
                os.rename(partial, home)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
        answer = {"relocated_to": home}
    else:
        sys.exit(f"unknown verb {verb!r}")
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
