"""AWS region codes and their long names, so users can say "Ohio" for us-east-2.

The names of the commercial regions are static data here (the console's and the Pricing API's
names; no botocore import on the command line's start-up path). Any other code or name is checked
against the regions botocore knows for EC2 in every partition (GovCloud, China, …); a code shaped
like a region's that botocore does not know is refused with the closest ones and how to get a newer
botocore (a typo would otherwise only fail later, as an unreachable endpoint).
"""

from __future__ import annotations

import difflib
import functools
import re

from ..errors import ConfigError

__all__ = ["REGION_NAMES", "botocore_regions", "find_region"]

REGION_NAMES: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "af-south-1": "Africa (Cape Town)",
    "ap-east-1": "Asia Pacific (Hong Kong)",
    "ap-east-2": "Asia Pacific (Taipei)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-south-2": "Asia Pacific (Hyderabad)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-southeast-3": "Asia Pacific (Jakarta)",
    "ap-southeast-4": "Asia Pacific (Melbourne)",
    "ap-southeast-5": "Asia Pacific (Malaysia)",
    "ap-southeast-6": "Asia Pacific (New Zealand)",
    "ap-southeast-7": "Asia Pacific (Thailand)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)",
    "ca-central-1": "Canada (Central)",
    "ca-west-1": "Canada West (Calgary)",
    "eu-central-1": "Europe (Frankfurt)",
    "eu-central-2": "Europe (Zurich)",
    "eu-west-1": "Europe (Ireland)",
    "eu-west-2": "Europe (London)",
    "eu-west-3": "Europe (Paris)",
    "eu-north-1": "Europe (Stockholm)",
    "eu-south-1": "Europe (Milan)",
    "eu-south-2": "Europe (Spain)",
    "il-central-1": "Israel (Tel Aviv)",
    "me-south-1": "Middle East (Bahrain)",
    "me-central-1": "Middle East (UAE)",
    "mx-central-1": "Mexico (Central)",
    "sa-east-1": "South America (Sao Paulo)",
}


_CODE = re.compile(r"[a-z]{2,4}(-[a-z]+)+-\d+")


@functools.cache
def botocore_regions() -> dict[str, str]:
    """{code: long name} of every region botocore lists for EC2, in every partition (its endpoints data)."""
    from botocore.loaders import create_loader

    names: dict[str, str] = {}
    for partition in create_loader().load_data("endpoints").get("partitions", []):
        ec2 = set(partition.get("services", {}).get("ec2", {}).get("endpoints", {}))
        for code, info in partition.get("regions", {}).items():
            if code in ec2:
                names[code] = str(info.get("description") or code)
    return names


def find_region(text: str) -> str:
    """Map a region code or part of its long name to the code: ``find_region("Ohio") == "us-east-2"``.

    Matching is case-insensitive; a code passes through unchanged (``us-gov-west-1``,
    ``ap-southeast-5``: any code botocore knows for EC2).
    An unknown or ambiguous text raises ConfigError listing the candidates.
    """
    wanted = text.strip().lower()
    if wanted in REGION_NAMES:
        return wanted
    matches = [code for code, name in REGION_NAMES.items() if wanted and wanted in name.lower()]
    if not matches and wanted:  # not a commercial region's code or name: what botocore knows (GovCloud, China, …)
        known = botocore_regions()
        if wanted in known:
            return wanted
        matches = [code for code, name in known.items() if wanted in name.lower()]
        names = {**known, **REGION_NAMES}
    else:
        names = REGION_NAMES
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{c} ({names[c]})" for c in matches)
        raise ConfigError(
            f"Region '{text}' is ambiguous: it matches {listed}.", hint="Give the region code or a longer part of its name."
        )
    close = difflib.get_close_matches(wanted, list(names), n=3)
    some = ", ".join(f"{c} ({names[c]})" for c in (close or list(REGION_NAMES)[:8]))
    newer = ""
    if _CODE.fullmatch(wanted):
        import botocore

        newer = f" A region newer than your botocore {botocore.__version__} needs `pip install -U boto3`."
    raise ConfigError(
        f"No AWS region matches '{text}'.",
        hint=f"Use a region code or part of its name, for example: {some}.{newer}",
    )
