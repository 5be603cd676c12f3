import json


def heading(text):
    return json.dumps({"summary": text.strip()})
