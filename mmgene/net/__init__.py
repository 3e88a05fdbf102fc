"""The security base of every HTTP call: where secrets come from and how they stay out of messages
(:mod:`mmgene.net.credentials`), and a total deadline per attempt (:mod:`mmgene.net.deadline`).

It sits below every package that talks to a server (gene text, text encoders, the Hub, share links).
Import the modules directly; ``deadline`` imports ``requests``.
"""
