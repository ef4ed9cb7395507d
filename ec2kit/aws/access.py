"""SSH access to ec2kit's instances: the EC2 key pair and the ``ec2kit-ssh`` security group.

The private key is generated on this machine (``ssh-keygen``) and never leaves it; AWS gets
the public half. SSH is allowed from this machine's public IPv4 /32 (learnt from a "what is my IP" URL, see
:mod:`~ec2kit.aws.address`), from ``EC2KIT_SSH_CIDR`` when set, or from anywhere only when asked
(``--open-ssh``). When the address changes, the next command that connects adds the new /32
(:meth:`Access.admit_caller`); ``inv access --prune`` removes the old ones.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fsutil import atomic_write
from .address import caller_ip
from .errors import error_code, translated
from .models import MANAGED_TAG, SECURITY_GROUP, filters, tag_list
from .session import AwsSession, eventually

__all__ = ["Access", "SshRule", "key_fingerprints", "rule_description"]

WORLD = "0.0.0.0/0"
CALLER_CACHE = "caller-ip.json"  # this machine's public address, for a few minutes (aws/address.py)
ADMITTED_CACHE = "ssh-access.json"  # group id -> the /32 ec2kit last made sure it admits
OWN_ADDRESS = "ec2kit: your address on "  # how the address rules ec2kit adds describe themselves (then the day)
ROOM = 10  # old address rules removed at once when a group is full


class Access:
    """Key pair and security group verbs over one session (the Cloud forwards ``cloud.ensure_key_pair()``, … here).

    ``checkip_url`` answers this machine's public IPv4 (the sandbox has its own; default: settings.checkip_url).
    """

    def __init__(self, aws: AwsSession, *, checkip_url: str | None = None) -> None:
        self.aws = aws
        self.settings = aws.settings
        self._checkip_url = checkip_url
        self.pruned: list[str] = []  # old address rules removed to make room (AWS's rule limit), for the caller to say

    @translated("set up the EC2 key pair")
    def ensure_key_pair(self) -> Path:
        """Make sure the local ed25519 key exists and AWS knows its public half; returns the key file.

        The private key is generated here (``ssh-keygen``) and never leaves this machine.
        """
        from ..keypair import check_key_pair

        key_file, name = self.settings.key_file, self.settings.key_name
        check_key_pair(key_file)  # before any AWS call: a mismatched .pub would lock us out of what we launch
        pairs = self.aws.ec2.describe_key_pairs(Filters=filters(**{"key-name": name})).get("KeyPairs", [])
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
                f"The key pair '{name}' in AWS ({self.aws.region}) does not match your local key {key_file}.",
                hint=f"Use the private key that belongs to it, delete the AWS key pair (`aws ec2 delete-key-pair --key-name {name}`) "
                "so ec2kit imports yours, or choose another key pair name with EC2KIT_KEY_NAME.",
            )
        if not pairs:
            self.aws.ec2.import_key_pair(
                KeyName=name,
                PublicKeyMaterial=public.encode(),
                TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list({MANAGED_TAG: "1", "Name": name})}],
            )
        return key_file

    @property
    def checkip_url(self) -> str | None:
        """Where this machine's public IPv4 is learnt; None for a bare local endpoint (tests' moto)."""
        if self._checkip_url:
            return self._checkip_url
        return None if self.aws.endpoint_url else self.settings.checkip_url

    def caller_ip(self, *, fresh: bool = False) -> str | None:
        """This machine's public IPv4 (cached a few minutes in EC2KIT_HOME); None on a bare local endpoint."""
        url = self.checkip_url
        return caller_ip(url, cache=self.settings.home / CALLER_CACHE, fresh=fresh) if url else None

    def ssh_cidr(self, *, open_ssh: bool = False, fresh: bool = False) -> str:
        """Where SSH may come from: EC2KIT_SSH_CIDR / config ``ssh_cidr``, 0.0.0.0/0 with ``open_ssh``,
        else this machine's public IPv4 /32 (127.0.0.1/32 on a bare local endpoint)."""
        configured = self.settings.ssh_cidr
        if configured:
            return configured
        if open_ssh:
            return WORLD
        ip = self.caller_ip(fresh=fresh)
        return f"{ip}/32" if ip else "127.0.0.1/32"

    @translated("find the default VPC")
    def default_vpc(self) -> str:
        """The id of the region's default VPC; a ConfigError says what to do when there is none."""
        vpcs = self.aws.ec2.describe_vpcs(Filters=filters(isDefault="true")).get("Vpcs", [])
        if not vpcs:
            raise ConfigError(
                f"Region {self.aws.region} has no default VPC, so ec2kit does not know where to launch.",
                hint="Name a subnet with --subnet ID-or-Name (or `subnet` in ec2kit.toml), create a default VPC with "
                "`aws ec2 create-default-vpc`, or use another region.",
            )
        return str(vpcs[0]["VpcId"])

    @translated("set up the ec2kit-ssh security group")
    def ensure_security_group(self, *, open_ssh: bool = False, vpc_id: str | None = None) -> str:
        """The id of security group ``ec2kit-ssh`` in ``vpc_id`` (default VPC when None), allowing tcp/22
        from :meth:`ssh_cidr` and from its own members (ec2kit instances reach each other)."""
        cidr = self.ssh_cidr(open_ssh=open_ssh)
        vpc_id = vpc_id or self.default_vpc()
        groups = self.aws.ec2.describe_security_groups(Filters=filters(**{"group-name": SECURITY_GROUP, "vpc-id": vpc_id})).get(
            "SecurityGroups", []
        )
        if groups:
            group = groups[0]
        else:
            gid = self.aws.ec2.create_security_group(
                GroupName=SECURITY_GROUP,
                Description="SSH to ec2kit instances",
                VpcId=vpc_id,
                TagSpecifications=[
                    {"ResourceType": "security-group", "Tags": tag_list({MANAGED_TAG: "1", "Name": SECURITY_GROUP})}
                ],
            )["GroupId"]
            group = {"GroupId": gid, "IpPermissions": []}
        gid = str(group["GroupId"])
        if not _allows_ssh(group.get("IpPermissions", []), cidr):
            self._authorize(gid, {"IpRanges": [{"CidrIp": cidr, "Description": rule_description(cidr)}]})
        if not any(
            pair.get("GroupId") == gid for perm in group.get("IpPermissions", []) for pair in perm.get("UserIdGroupPairs", [])
        ):
            # ec2kit instances may SSH to each other over private addresses: a spot
            # run pushes its results to a monitor instance (`--monitor`).
            self._authorize(gid, {"UserIdGroupPairs": [{"GroupId": gid, "Description": "ec2kit instances to each other"}]})
        if cidr != WORLD and not self.settings.ssh_cidr:
            self._remember_admitted([gid], cidr)
        return gid

    def _authorize(self, group_id: str, source: dict[str, Any], *, retry: bool = True) -> None:
        """Allow tcp/22 into ``group_id`` from ``source`` (IpRanges or UserIdGroupPairs); a duplicate is fine.

        At AWS's rule limit (60 per group by default), the oldest addresses ec2kit added are removed to
        make room (never a rule ec2kit did not describe as its own, never the one being kept)."""
        try:
            eventually(  # a group created a moment ago may answer InvalidGroup.NotFound for a while
                lambda: self.aws.ec2.authorize_security_group_ingress(
                    GroupId=group_id, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, **source}]
                )
            )
        except Exception as err:  # a concurrent ec2kit may have added it
            code = error_code(err)
            if "Duplicate" in code:
                return
            if code != "RulesPerSecurityGroupLimitExceeded" or not source.get("IpRanges") or not retry:
                raise
            keep = {r.get("CidrIp", "") for r in source["IpRanges"]}
            if not self._make_room(group_id, keep):
                raise ConfigError(
                    f"Security group {SECURITY_GROUP} ({group_id}) has reached AWS's limit of rules per group, and none "
                    "of them is an old address ec2kit added, so ec2kit cannot admit your address.",
                    hint="Remove rules you no longer need from that group, or ask for more with Service Quotas "
                    "('Inbound or outbound rules per security group', L-0EA8095F).",
                ) from None
            self._authorize(group_id, source, retry=False)

    def _make_room(self, group_id: str, keep: set[str], *, count: int = ROOM) -> list[str]:
        """Revoke up to ``count`` of the oldest address rules ec2kit added to ``group_id`` (not ``keep``); their CIDRs."""
        groups = self.aws.ec2.describe_security_groups(GroupIds=[group_id]).get("SecurityGroups", [])
        ours: list[tuple[str, int, str, dict[str, Any]]] = []
        permissions: list[dict[str, Any]] = groups[0].get("IpPermissions", []) if groups else []
        for perm in permissions:
            if not _covers_ssh(perm):
                continue
            for order, r in enumerate(perm.get("IpRanges", [])):
                described, cidr = r.get("Description", ""), r.get("CidrIp", "")
                if described.startswith(OWN_ADDRESS) and cidr not in keep and cidr != WORLD:
                    ours.append((described[len(OWN_ADDRESS) :], order, cidr, perm))
        removed = []
        for _day, _order, cidr, perm in sorted(ours, key=lambda o: (o[0], o[1]))[:count]:
            base: dict[str, Any] = {k: perm[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in perm}
            base["IpRanges"] = [{"CidrIp": cidr}]
            self.aws.ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[base])
            removed.append(cidr)
        self.pruned.extend(removed)
        return removed

    # -- the caller's address, kept admitted ------------------------------------------------
    def _admitted(self) -> dict[str, str]:
        try:
            data = json.loads((self.settings.home / ADMITTED_CACHE).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _remember_admitted(self, group_ids: list[str], cidr: str | None) -> None:
        data = self._admitted()
        for gid in group_ids:
            if cidr:
                data[gid] = cidr
            else:
                data.pop(gid, None)
        try:
            atomic_write(self.settings.home / ADMITTED_CACHE, json.dumps(data), fsync=False)
        except OSError:
            pass  # only costs a DescribeSecurityGroups next time

    @translated("allow SSH from your address")
    def admit_caller(self, group_ids: list[str], *, fresh: bool = False) -> str | None:
        """Make sure ec2kit's groups ``group_ids`` admit this machine's current public IPv4 (adding its /32
        when the address changed); returns a sentence saying what was added, or None.

        Free when nothing changed: the address comes from the few-minute cache and the groups
        are not described again while they are known to admit it. Does nothing when
        EC2KIT_SSH_CIDR / ``ssh_cidr`` names the source (you chose it).
        """
        if not group_ids or self.settings.ssh_cidr:
            return None
        cidr = self.ssh_cidr(fresh=fresh)
        admitted = self._admitted()
        if not fresh and all(admitted.get(g) == cidr for g in group_ids):
            return None
        ip = cidr.split("/")[0]
        added: list[str] = []
        for group in self.aws.ec2.describe_security_groups(GroupIds=group_ids).get("SecurityGroups", []):
            if not any(_admits(p, ip) for p in group.get("IpPermissions", [])):
                self._authorize(group["GroupId"], {"IpRanges": [{"CidrIp": cidr, "Description": rule_description(cidr)}]})
                added.append(group["GroupId"])
        self._remember_admitted(group_ids, cidr)
        if not added:
            return None
        return f"Your public address is now {ip}: SSH from {cidr} added to {SECURITY_GROUP} ({', '.join(added)}). " + (
            self.pruned_note() or "`inv access --prune` removes the old addresses."
        )

    def pruned_note(self) -> str:
        """A sentence on the old address rules removed to make room since the last call ('' for none)."""
        if not self.pruned:
            return ""
        gone, self.pruned = self.pruned, []
        return (
            f"The group was at AWS's rule limit, so the {len(gone)} oldest address(es) ec2kit had added were removed "
            f"({', '.join(gone[:5])}{'…' if len(gone) > 5 else ''})."
        )

    @translated("list ec2kit's SSH rules")
    def ssh_rules(self) -> list[SshRule]:
        """Every tcp/22 rule of every ``ec2kit-ssh`` group in this region, marked ``current`` when it
        is this machine's address (or the configured EC2KIT_SSH_CIDR)."""
        keep = self.ssh_cidr()
        ip = keep.split("/")[0]
        rules: list[SshRule] = []
        groups = self.aws.paginate(
            "describe_security_groups", "SecurityGroups[]", Filters=filters(**{"group-name": SECURITY_GROUP})
        )
        for group in groups:
            for perm in group.get("IpPermissions", []):
                if not _covers_ssh(perm):
                    continue
                for r in perm.get("IpRanges", []):
                    cidr = r.get("CidrIp", "")
                    rules.append(
                        SshRule(
                            group["GroupId"],
                            group.get("VpcId", ""),
                            cidr,
                            r.get("Description", ""),
                            current=cidr == keep or (keep.endswith("/32") and cidr != WORLD and _in(ip, cidr)),
                            everyone=cidr == WORLD,
                            permission=perm,
                        )
                    )
                for pair in perm.get("UserIdGroupPairs", []):
                    source = pair.get("GroupId", "")
                    rules.append(
                        SshRule(
                            group["GroupId"],
                            group.get("VpcId", ""),
                            f"group {source}",
                            pair.get("Description", ""),
                            current=True,
                            permission=perm,
                        )
                    )
        return rules

    @translated("remove old SSH rules")
    def prune_ssh_rules(self) -> list[SshRule]:
        """Revoke every address rule of ec2kit's groups except the current one (added first where
        missing); returns what was removed. The rule letting ec2kit instances reach each other stays.
        """
        rules = self.ssh_rules()
        keep = self.ssh_cidr()
        for gid in sorted({r.group_id for r in rules} - {r.group_id for r in rules if r.current and "/" in r.source}):
            # only a wider rule (--open-ssh) let this machine in: add its own before removing that
            self._authorize(gid, {"IpRanges": [{"CidrIp": keep, "Description": rule_description(keep)}]})
        removed = [r for r in rules if not r.current]
        for rule in removed:
            perm: dict[str, Any] = {k: rule.permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in rule.permission}
            self.aws.ec2.revoke_security_group_ingress(
                GroupId=rule.group_id, IpPermissions=[{**perm, "IpRanges": [{"CidrIp": rule.source}]}]
            )
        self._remember_admitted(sorted({r.group_id for r in removed}), None)
        return removed


@dataclass
class SshRule:
    """One tcp/22 rule of an ec2kit-ssh group: where SSH may come from."""

    group_id: str
    vpc_id: str
    source: str  # a CIDR, or "group sg-…" for the rule letting ec2kit instances in
    description: str
    current: bool = False  # this machine's address now (or the configured EC2KIT_SSH_CIDR), or the group rule
    everyone: bool = False  # 0.0.0.0/0 (--open-ssh)
    permission: dict[str, Any] = field(default_factory=dict, repr=False)


def rule_description(cidr: str) -> str:
    """What a rule ec2kit adds says about itself: ``ec2kit: your address on 2026-11-30``."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    return f"ec2kit --open-ssh on {day}" if cidr == WORLD else f"{OWN_ADDRESS}{day}"


def _in(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _covers_ssh(perm: dict[str, Any]) -> bool:
    if perm.get("IpProtocol") == "-1":
        return True
    return perm.get("IpProtocol") == "tcp" and perm.get("FromPort", 0) <= 22 <= perm.get("ToPort", 0)


def _admits(perm: dict[str, Any], ip: str) -> bool:
    """Whether an ingress permission lets tcp/22 in from ``ip``."""
    return _covers_ssh(perm) and any(_in(ip, r.get("CidrIp", "")) for r in perm.get("IpRanges", []))


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
    atomic_write(pub, out, mode=0o644)
    return out.strip()
