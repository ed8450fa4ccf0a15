"""nbgrader's configuration when nbgrader or Jupyter starts in the repository root: the course's, in autograder/."""
c = get_config()  # noqa: F821  (provided by nbgrader)
load_subconfig("autograder/nbgrader_config.py")  # noqa: F821
