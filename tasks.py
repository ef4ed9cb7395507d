"""ec2kit's command line in this checkout: `inv --list`, `inv launch base`, …

Add your own tasks below, or Python tasks that recipes call by name:

    from ec2kit.recipe import register_task

    @register_task("hello")
    def hello(tc, who="world"):
        tc.report(f"hello {who}")
"""

from ec2kit.cli import ns  # noqa: F401  (Invoke looks for `ns`)
