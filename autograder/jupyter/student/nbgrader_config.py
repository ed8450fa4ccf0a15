"""The course's nbgrader configuration, for nbgrader run in any folder of a Jupyter started by `./run.sh`.

(Jupyter reads this folder through JUPYTER_CONFIG_PATH; nbgrader's assignment list, for one, reloads its
configuration from the folder that fetched assignments go to.)
"""
c = get_config()  # noqa: F821  (provided by nbgrader)
load_subconfig("../../nbgrader_config.py")  # noqa: F821
