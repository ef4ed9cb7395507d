"""AWS region codes and their long names, so users can say "Ohio" for us-east-2.

Static AWS data (the names shown in the console and used by the Pricing API).
"""

from __future__ import annotations

from ..errors import ConfigError

REGION_NAMES: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "af-south-1": "Africa (Cape Town)",
    "ap-east-1": "Asia Pacific (Hong Kong)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-south-2": "Asia Pacific (Hyderabad)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-southeast-3": "Asia Pacific (Jakarta)",
    "ap-southeast-4": "Asia Pacific (Melbourne)",
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
    "sa-east-1": "South America (Sao Paulo)",
}


def find_region(text: str) -> str:
    """Map a region code or part of its long name to the code: ``find_region("Ohio") == "us-east-2"``.

    Matching is case-insensitive; a code passes through unchanged. An unknown or
    ambiguous text raises ConfigError listing the candidates.
    """
    wanted = text.strip().lower()
    if wanted in REGION_NAMES:
        return wanted
    matches = [code for code, name in REGION_NAMES.items() if wanted and wanted in name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(f"{c} ({REGION_NAMES[c]})" for c in matches)
        raise ConfigError(
            f"Region '{text}' is ambiguous: it matches {listed}.", hint="Give the region code or a longer part of its name."
        )
    some = ", ".join(f"{c} ({n})" for c, n in list(REGION_NAMES.items())[:8])
    raise ConfigError(
        f"No AWS region matches '{text}'.",
        hint=f"Use a region code or part of its name, for example: {some}.",
    )
