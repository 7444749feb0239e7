"""The duty console (值班台): a web page for duty officers and matrix managers.

Why a console beside Kibana: Kibana explores, but the night shift needs a workflow
(see an alert, acknowledge it, note what was done, hand over), and in the embedded
default (SQLite, no Elasticsearch) it is the only screen there is.

* ``query``/``es``: one small read interface over the pipeline store (SQLite or ES).
* ``board``: pure derivations (open linkage tasks, response table, stale accounts).
* ``state``: the console's own SQLite file (alert workflow, sessions, audit log).
* ``auth``: per-user tokens from a YAML file or the environment, two roles.
* ``app``: the aiohttp app (REST + server-sent events + static files); ``cli``: commands.

The read model is documented in ``README.md`` beside this file.
"""
