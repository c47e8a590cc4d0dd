#!/usr/bin/env python3
"""Writes demo/catalog/costs/focus.csv: 35 days of daily FOCUS rows for the
AWS resources of demo/catalog/aws/resources.json (EC2 and RDS billed with a
28% discount on the effective cost), plus a CloudFront distribution that no
catalog item claims. Deterministic: the periods end on 2026-12-01 (the demo
loader moves them to end today) and the daily wobble is hashed."""

import datetime
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).parent
DAILY = {"Instance": 4.608, "DBInstance": 11.52, "Bucket": 0.73, "LoadBalancer": 0.54, "Queue": 0.12}
SERVICE = {"EC2": "AmazonEC2", "RDS": "AmazonRDS", "S3": "AmazonS3", "ELB": "AWSELB", "SQS": "AWSQueueService"}
END = datetime.datetime(2026, 12, 1)
DAYS = 35


def period(d):
    start = END - datetime.timedelta(days=d + 1)
    return f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{start + datetime.timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"


def main():
    resources = json.loads((HERE / "catalog/aws/resources.json").read_text())["resources"]
    lines = ["ResourceId,ServiceName,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency"]
    for r in resources:
        base = DAILY.get(r["resourceType"])
        if base is None:
            continue
        for d in range(DAYS):
            wobble = int(hashlib.sha256(f'{r["arn"]}{d}'.encode()).hexdigest()[:4], 16) / 65535 * 0.1
            billed = round(base * (1 + wobble), 4)
            discount = 0.72 if r["resourceType"] in ("Instance", "DBInstance") else 1.0
            start, end = period(d)
            lines.append(f'{r["arn"]},{SERVICE.get(r["service"], r["service"])},{start},{end},{billed},{round(billed * discount, 4)},USD')
    for d in range(DAYS):
        start, end = period(d)
        lines.append(f"arn:aws:cloudfront::123456789012:distribution/E2DEMO,AmazonCloudFront,{start},{end},1.9,1.9,USD")
    out = HERE / "catalog/costs/focus.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
