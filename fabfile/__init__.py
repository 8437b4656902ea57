"""The lab's logic, in layers; each imports only from the layers listed before it:

core -> remote -> machines -> converge -> roles -> checks -> drills -> views -> lifecycle

`tasks.py` parses options and calls `lifecycle` (and, for reading, the layers below it).
"""
