"""reprotrain: the library behind the five DVC stages in `stages/`.

Layers, each importing only those below it (checked by import-linter in `make lint`):
config -> data -> metrics -> models -> training -> tuning | evaluation -> reporting ->
tracking -> cli.
"""
