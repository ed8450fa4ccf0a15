"""The maintainers' tools, above both packages: ``cli`` (the ``course`` command), ``notebooks`` (masters ->
``solutions/`` -> ``course/``), ``environment`` (``requirements.lock`` and ``environment.yml``) and ``benchmark``
(``course bench``). They import ``induction_course`` and ``autograder``; neither imports them.
"""
