#!/usr/bin/env python3
# Prints the settings table of docs/configuration.md (between its settings:start and settings:end
# comments) from src/config.rs SETTINGS (run: python3 scripts/settings-table.py).
import re
s=open('src/config.rs').read()
consts=dict(re.findall(r'pub const (ENV_\w+): &str =\s*"([^"]+)";',s))
rows=re.findall(r'Setting \{\s*name: (ENV_\w+),\s*default: "([^"]*)",\s*secret: (\w+),\s*doc: "((?:[^"\\]|\\.)*)",?\s*\}',s,re.S)
print("| variable | default | what it does |\n|---|---|---|")
for n,d,sec,doc in rows:
    doc=doc.replace('\\"','"')
    # Outside `code`, <word> would be read as an HTML tag (and vanish): escape the <.
    doc=re.sub(r'(`[^`]*`)|<',lambda m:m.group(1) or '&lt;',doc)
    print(f"| `{consts[n]}` | {('`'+d+'`') if d else '—'} | {doc}{' (secret: redacted everywhere)' if sec=='true' else ''} |")
