"""Approvals: an agent asks a person before an action, and the answer is made once.

``store`` owns the rows and their conditional updates (create, decide, expire), ``policy`` decides
which requests need a person at all (the agent's policy set at hire, the company's blanket rules),
``lifecycle`` moves the task while it waits (``blocked``) and when the answer comes, and ``inbox`` is
what a person has to look at.
"""
