"""The base of every HTTP call mmgene makes itself: where secrets come from and how they stay out of
messages (:mod:`mmgene.net.credentials`), a total deadline per attempt (:mod:`mmgene.net.deadline`), and
the one session, retry loop and credential scoping the clients share (:mod:`mmgene.net.http`).

It sits below every package that talks to a server (gene text, text encoders, the Hub, share links).
Import the modules directly; ``deadline`` and ``http`` import ``requests``.
"""
