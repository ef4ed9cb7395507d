"""SSH access to ec2kit's instances: the EC2 key pair and the ``ec2kit-ssh`` security group.

The private key is generated on this machine (``ssh-keygen``) and never leaves it; AWS gets
the public half. SSH is allowed from ``EC2KIT_SSH_CIDR`` (see :class:`~ec2kit.settings.Settings`),
from loopback in the sandbox, or from anywhere only when asked (``--open-ssh``).
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .errors import translated
from .models import MANAGED_TAG, SECURITY_GROUP, filters, tag_list
from .session import AwsSession, error_code

__all__ = ["Access", "key_fingerprints"]


class Access(AwsSession):
    """Key pair and security group verbs of :class:`~ec2kit.aws.cloud.Cloud`."""

    @translated("set up the EC2 key pair")
    def ensure_key_pair(self) -> Path:
        """Make sure the local ed25519 key exists and AWS knows its public half; returns the key file.

        The private key is generated here (``ssh-keygen``) and never leaves this machine.
        """
        from ..keypair import check_key_pair

        key_file, name = self.settings.key_file, self.settings.key_name
        check_key_pair(key_file)  # before any AWS call: a mismatched .pub would lock us out of what we launch
        pairs = self.ec2.describe_key_pairs(Filters=filters(**{"key-name": name})).get("KeyPairs", [])
        if not key_file.exists():
            if pairs:
                raise ConfigError(
                    f"AWS already has a key pair named '{name}', but its private key is not at {key_file}.",
                    hint=f"Copy that private key to {key_file} (mode 600), or choose another key pair name with EC2KIT_KEY_NAME.",
                )
            _generate_key(key_file)
        public = _public_key(key_file)
        if pairs and not _same_key(pairs[0].get("KeyFingerprint", ""), public):
            raise ConfigError(
                f"The key pair '{name}' in AWS ({self.region}) does not match your local key {key_file}.",
                hint=f"Use the private key that belongs to it, delete the AWS key pair (`aws ec2 delete-key-pair --key-name {name}`) "
                "so ec2kit imports yours, or choose another key pair name with EC2KIT_KEY_NAME.",
            )
        if not pairs:
            self.ec2.import_key_pair(
                KeyName=name,
                PublicKeyMaterial=public.encode(),
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list({MANAGED_TAG: "1", "Name": name})}],
            )
        return key_file

    def ssh_cidr(self, *, open_ssh: bool = False) -> str:
        """Where SSH may come from: settings.ssh_cidr (EC2KIT_SSH_CIDR), loopback for the sandbox, or 0.0.0.0/0 if asked."""
        configured = self.settings.ssh_cidr
        if configured:
            return configured
        if self.endpoint_url:
            return "127.0.0.1/32"
        if open_ssh:
            return "0.0.0.0/0"
        raise ConfigError(
            "ec2kit does not know your public IP address, so it cannot limit SSH access to it.",
            hint="Set EC2KIT_SSH_CIDR to your address (e.g. 203.0.113.7/32; search 'what is my ip'), "
            "or explicitly allow SSH from anywhere with --open-ssh.",
        )

    @translated("set up the ec2kit-ssh security group")
    def ensure_security_group(self, *, open_ssh: bool = False) -> str:
        """The id of security group ``ec2kit-ssh`` in the default VPC, allowing tcp/22 from :meth:`ssh_cidr`."""
        cidr = self.ssh_cidr(open_ssh=open_ssh)
        vpcs = self.ec2.describe_vpcs(Filters=filters(isDefault="true")).get("Vpcs", [])
        if not vpcs:
            raise ConfigError(
                f"Region {self.region} has no default VPC, which ec2kit launches into.",
                hint="Create one with `aws ec2 create-default-vpc`, or use another region.",
            )
        vpc_id = vpcs[0]["VpcId"]
        groups = self.ec2.describe_security_groups(Filters=filters(**{"group-name": SECURITY_GROUP, "vpc-id": vpc_id})).get(
            "SecurityGroups", []
        )
        if groups:
            group = groups[0]
        else:
            gid = self.ec2.create_security_group(
                GroupName=SECURITY_GROUP,
                Description="SSH to ec2kit instances",
                VpcId=vpc_id,
                TagSpecifications=[
                    {"ResourceType": "security-group", "Tags": tag_list({MANAGED_TAG: "1", "Name": SECURITY_GROUP})}
                ],
            )["GroupId"]
            group = {"GroupId": gid, "IpPermissions": []}
        if not _allows_ssh(group.get("IpPermissions", []), cidr):
            try:
                self.ec2.authorize_security_group_ingress(
                    GroupId=group["GroupId"],
                    IpPermissions=[
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 22,
                            "ToPort": 22,
                            "IpRanges": [{"CidrIp": cidr, "Description": "ec2kit ssh"}],
                        }
                    ],
                )
            except Exception as err:  # a concurrent ec2kit may have added it
                if "Duplicate" not in error_code(err):
                    raise
        gid = group["GroupId"]
        if not any(
            pair.get("GroupId") == gid for perm in group.get("IpPermissions", []) for pair in perm.get("UserIdGroupPairs", [])
        ):
            # ec2kit instances may SSH to each other over private addresses: a spot
            # run pushes its results to a monitor instance (`--monitor`).
            try:
                self.ec2.authorize_security_group_ingress(
                    GroupId=gid,
                    IpPermissions=[
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 22,
                            "ToPort": 22,
                            "UserIdGroupPairs": [{"GroupId": gid, "Description": "ec2kit instances to each other"}],
                        }
                    ],
                )
            except Exception as err:
                if "Duplicate" not in error_code(err):
                    raise
        return str(gid)


def _allows_ssh(permissions: list[dict[str, Any]], cidr: str) -> bool:
    for perm in permissions:
        if perm.get("IpProtocol") in ("tcp", "-1") and (
            perm.get("IpProtocol") == "-1" or perm.get("FromPort", 0) <= 22 <= perm.get("ToPort", 0)
        ):
            if any(r.get("CidrIp") == cidr for r in perm.get("IpRanges", [])):
                return True
    return False


def key_fingerprints(public_key: str) -> set[str]:
    """Fingerprints EC2 may report for an imported OpenSSH public key line.

    AWS: base64 SHA-256 of the key blob (as ``ssh-keygen -l``); moto: colon-hex SHA-256 of the DER key.
    """
    import hashlib

    try:
        blob = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError):
        return set()
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    found = {digest, digest.rstrip("=")}
    if public_key.startswith("ssh-ed25519"):
        der = bytes.fromhex("302a300506032b6570032100") + blob[-32:]
        found.add(":".join(f"{b:02x}" for b in hashlib.sha256(der).digest()))
    return found


def _same_key(aws_fingerprint: str, public_key: str) -> bool:
    """False only when AWS's fingerprint is in a SHA-256 form we know and matches none of ours."""
    fp = aws_fingerprint.removeprefix("SHA256:")
    known_form = len(fp) in (43, 44) or (len(fp) == 95 and fp.count(":") == 31)
    return not known_form or fp in key_fingerprints(public_key)


def _generate_key(key_file: Path) -> None:
    """Generate a passphrase-less ed25519 key at ``key_file`` (mode 600)."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(key_file.parent, 0o700)
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ec2kit-{key_file.name}", "-f", str(key_file)],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        raise ConfigError(
            "ssh-keygen is not installed, so ec2kit cannot create its SSH key.",
            hint="Install OpenSSH (e.g. `apt-get install openssh-client`).",
        ) from None
    except subprocess.CalledProcessError as err:
        raise ConfigError(f"ssh-keygen failed to create {key_file}: {err.stderr.strip()}") from None
    os.chmod(key_file, 0o600)


def _public_key(key_file: Path) -> str:
    """The public half of ``key_file`` (from the .pub beside it, else derived with ssh-keygen -y)."""
    pub = Path(f"{key_file}.pub")
    if pub.exists():
        return pub.read_text().strip()
    try:
        out = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise ConfigError(
            f"Could not read the public half of {key_file}: {getattr(err, 'stderr', err)}",
            hint="Check it is an unencrypted OpenSSH private key with mode 600.",
        ) from None
    pub.write_text(out)
    return out.strip()
