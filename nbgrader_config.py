"""nbgrader configuration of the course (read by every `nbgrader` command run from this folder).

solutions/psN/    the SOURCE of each assignment: solutions and visible + hidden tests
assignments/psN/  the RELEASE students get, generated from solutions/ (`make assignments`)
submitted/, autograded/, feedback/, gradebook.db: instructor-local runtime state, ignored by git.
"""

from llmcourse.assignments import FEEDBACK_PREPROCESSORS, nbgrader_settings

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

for section, values in nbgrader_settings().items():
    for key, value in values.items():
        setattr(getattr(c, section), key, value)

# Feedback never shows hidden tests: neither their source nor the traceback lines that quote it.
c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
