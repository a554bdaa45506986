"""Makes a quetz deployment for the publishing tests and prints an API key.

Usage: quetz_setup.py DEPLOYMENT_DIR

Runs with the python of the quetz-server environment that
`scripts/prerequisites --with-oracles` makes. It creates the deployment
(an sqlite database and a local package store below DEPLOYMENT_DIR, plain
http allowed), then a user with the server role `owner` (which may create
channels) and an API key for it, through quetz's own data model, and
prints the key. The test starts the server itself (`quetz start`), creates
a channel through the REST API with the key, and stops the server by PID.
"""

import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    deployment = Path(sys.argv[1]).resolve()
    quetz = Path(sys.executable).parent / "quetz"
    subprocess.run(
        [str(quetz), "create", str(deployment), "--create-conf"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config_file = deployment / "config.toml"
    text = config_file.read_text()
    text = text.replace("https_only = true", "https_only = false")
    config_file.write_text(text)
    os.environ["QUETZ_CONFIG_FILE"] = str(config_file)
    os.chdir(deployment)

    from quetz.config import Config
    from quetz.database import get_session
    from quetz.db_models import ApiKey, Identity, Profile, User

    config = Config(str(config_file))
    db = get_session(config.sqlalchemy_database_url)
    user = User(id=uuid.uuid4().bytes, username="cleave", role="owner")
    user.identities.append(Identity(provider="dummy", identity_id="1", username="cleave"))
    user.profile = Profile(name="cleave", avatar_url="/avatar.jpg")
    db.add(user)
    key = uuid.uuid4().hex
    db.add(
        ApiKey(
            key=key,
            description="cleave tests",
            time_created=date.today(),
            user=user,
            owner=user,
        )
    )
    db.commit()
    db.close()
    print(key)


if __name__ == "__main__":
    main()
