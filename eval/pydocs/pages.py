"""The pages of the Debian python3.11-doc HTML that make up the eval corpus (paths under its html/ root)."""

TUTORIAL = ["appetite", "interpreter", "introduction", "controlflow", "datastructures", "modules",
            "inputoutput", "errors", "classes", "stdlib", "stdlib2", "venv", "whatnow", "interactive",
            "floatingpoint", "appendix"]

LIBRARY = ["functions", "exceptions", "string", "re", "textwrap", "difflib", "datetime", "zoneinfo",
           "calendar", "collections", "heapq", "bisect", "enum", "copy", "pprint", "math", "random",
           "statistics", "fractions", "itertools", "functools", "operator", "pathlib", "os.path", "glob",
           "tempfile", "shutil", "pickle", "zipfile", "csv", "configparser", "hashlib", "secrets",
           "json", "base64", "dataclasses", "contextlib", "uuid", "warnings"]

PAGES = [f"tutorial/{name}.html" for name in TUTORIAL] + [f"library/{name}.html" for name in LIBRARY]
