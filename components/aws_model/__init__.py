"""Checks that model what AWS would do with the rendered stacks.

Pulumi's mocks echo inputs back, so tests over them check the program against itself.
The modules here evaluate the rendered resource graph the way AWS would at run time:
network reachability, KMS key grants, the WAF web ACL's effect on requests. Each module
exposes ``facts(graph) -> list[str]`` (a human summary, printed by ``make preview``) and
raises nothing on a healthy stack; the tests assert on their findings.
"""
