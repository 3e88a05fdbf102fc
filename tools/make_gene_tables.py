"""Regenerate mmgene's gene tables (``mmgene/_data/*.tsv.gz``) from upstream public files.

Tables written (gzip-compressed TSV; ``# key: value`` header lines say where the rows came from):

- ``gene_ids_human.tsv.gz``: Ensembl gene id -> symbol, from GENCODE (human). Read by
  :mod:`mmgene.genes.ids`.
- ``ncbi_genes_<species>.tsv.gz``: NCBI Gene records (GeneID, symbol, Ensembl id, full name,
  aliases, other designations, map location), one per gene, for ``human`` and ``mouse``. Read by
  :mod:`mmgene.genes.offline_text` and :mod:`mmgene.align.mentions`.

Inputs (local paths; the tool never touches the network, so download the files first):

- ``--gencode FILE``: GENCODE's GTF (``gencode.v44.annotation.gtf.gz``, from
  https://www.gencodegenes.org/human/), or a two-column CSV ``ENSG...,SYMBOL`` without a header (the
  form ``celltypist`` ships as ``GENCODEv44_Gene_id2name.csv``). ``--gencode-version`` names the
  release (``v44``); it is read from the GTF's ``##description`` line or the CSV's file name otherwise.
- ``--ncbi-human FILE [FILE ...]`` / ``--ncbi-mouse FILE [FILE ...]``: NCBI's ``gene_info`` files
  (``Homo_sapiens.gene_info.gz``, ``Mus_musculus.gene_info.gz`` from
  https://ftp.ncbi.nlm.nih.gov/gene/DATA/GENE_INFO/Mammalia/; Ensembl ids from the ``dbXrefs``
  column), or goatools' ``genes_NCBI_<taxid>_*.py`` copies of NCBI's tabular gene export (read with
  :mod:`ast`, never executed; they carry no Ensembl ids). With several files of one species, the first
  file that has a GeneID gives its record.
- ``--from-installed``: the copies inside the installed ``celltypist`` and ``goatools`` packages
  (located without importing them). This is how the shipped tables were made::

      python tools/make_gene_tables.py --from-installed --out mmgene/_data

  celltypist 1.7.1 (GENCODE v44 ids) and goatools 1.6.9 (NCBI human table downloaded 2016-01-05; mouse
  tables downloaded 2016-02-22: ``genes_NCBI_10090_All.py``, 21,955 genes, then the 28,212 protein-coding
  genes of ``genes_NCBI_10090_ProteinCoding.py``). No mouse GENCODE file and no NCBI ``gene_info`` file
  was available offline on the machine that made them, so there is no ``gene_ids_mouse.tsv.gz`` and the
  NCBI tables' ``ensembl_id`` column is empty (goatools' copies have no Ensembl ids); regenerating the
  NCBI tables from ``Homo_sapiens.gene_info.gz`` / ``Mus_musculus.gene_info.gz`` fills it.

Values are copied as they are (no re-casing, no clean-up), so the tables give mmgene exactly the
symbols and texts the upstream copies gave it. Output is deterministic: the same inputs give the same
bytes (gzip without a time stamp).
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import importlib.metadata
import importlib.util
import io
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: columns of the NCBI tables, in order.
NCBI_COLUMNS = ("gene_id", "symbol", "ensembl_id", "name", "aliases", "designations", "map_location")
GENE_ID_COLUMNS = ("ensembl_id", "symbol")
SPECIES = {"human": ("9606", "Homo sapiens"), "mouse": ("10090", "Mus musculus")}
#: goatools' copies inside the package: species -> files, first wins for a GeneID.
GOATOOLS_FILES = {
    "human": ("genes_NCBI_9606_All.py",),
    "mouse": ("genes_NCBI_10090_All.py", "genes_NCBI_10090_ProteinCoding.py"),
}
CELLTYPIST_GENCODE = Path("data") / "samples" / "GENCODEv44_Gene_id2name.csv"
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*G\d{11})(\.\d+)?(_PAR_Y)?$")


@dataclass
class Table:
    """Rows of one output table and the header lines that say where they came from."""

    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _package_file(package: str, relative: str | Path) -> tuple[Path, str]:
    """A file inside an installed package (found without importing it) and ``'<package> <version>'``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"make_gene_tables: the package {package!r} is not installed; pass the upstream files instead")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        sys.exit(f"make_gene_tables: {path} does not exist in the installed {package}")
    return path, f"{package} {importlib.metadata.version(package)}"


def _shown(path: Path) -> str:
    """A file inside an installed package as ``package/...`` (no machine-specific prefix)."""
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("celltypist", "goatools") and i > 0 and parts[i - 1].endswith("-packages"):
            return "/".join(parts[i:])
    return path.name


def _release(path: Path) -> str:
    """The GENCODE release named in a GTF's header (``version 44`` -> ``v44``) or in the file name."""
    if path.name.endswith((".gtf", ".gtf.gz")):
        with _open_text(path) as fh:
            for line in fh:
                if not line.startswith("#"):
                    break
                found = re.search(r"version (M?\d+)", line)
                if found:
                    return f"v{found.group(1)}"
    found = re.search(r"(?:gencode\.?)v(M?\d+)", path.name, re.IGNORECASE)
    if not found:
        sys.exit(f"make_gene_tables: cannot tell the GENCODE release of {path}; pass --gencode-version")
    return f"v{found.group(1)}"


def read_gencode(path: Path, release: str | None, copied_from: str = "") -> Table:
    """Ensembl gene id -> symbol pairs from a GENCODE GTF or a two-column CSV, in file order."""
    release = release or _release(path)
    table = Table(GENE_ID_COLUMNS)
    seen: set[str] = set()
    with _open_text(path) as fh:
        if path.name.endswith((".gtf", ".gtf.gz")):
            pairs = _gtf_genes(fh)
            form = "GTF, gene records: gene_id (version removed), gene_name"
        else:
            pairs = ((row[0], row[1]) for row in csv.reader(fh) if len(row) >= 2)
            form = "CSV of gene_id,gene_name pairs"
        for ensembl, symbol in pairs:
            match = _ENSEMBL_VERSION.match(ensembl)
            if not match or match.group(3) or not symbol or ensembl in seen:
                continue  # not a gene id, a PAR_Y copy of an X gene (older releases), no name, or a repeat
            seen.add(ensembl)
            table.rows.append((match.group(1) if match.group(2) else ensembl, symbol))
    table.meta = {
        "table": "human Ensembl gene id -> gene symbol",
        "version": f"GENCODE {release}",
        "source": f"GENCODE release {release[1:]} (https://www.gencodegenes.org), {form}",
        "file": f"{copied_from}: {_shown(path)}" if copied_from else path.name,
        "rows": str(len(table.rows)),
    }
    return table


def _gtf_genes(fh: Iterable[str]) -> Iterable[tuple[str, str]]:
    for line in fh:
        if line.startswith("#"):
            continue
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 9 or cols[2] != "gene":
            continue
        attrs = dict(re.findall(r'(\S+) "([^"]*)"', cols[8]))
        yield attrs.get("gene_id", ""), attrs.get("gene_name", "")


def _goatools_records(path: Path) -> tuple[list[dict[str, str]], str]:
    """Records of a goatools ``genes_NCBI_*.py`` file, read as a syntax tree (not executed), and its date."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    downloaded, records = "unknown", []
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.targets[0], ast.Name):
            continue
        name = node.targets[0].id
        if name == "downloaded":
            downloaded = ast.literal_eval(node.value).replace("_", "-")
        elif name == "GENEID2NT" and isinstance(node.value, ast.Dict):
            for value in node.value.values:
                if not isinstance(value, ast.Call):
                    raise SystemExit(f"make_gene_tables: unexpected entry in {path}: {ast.dump(value)[:80]}")
                fields = {kw.arg: ast.literal_eval(kw.value) for kw in value.keywords}
                records.append(
                    {
                        "gene_id": str(fields["GeneID"]),
                        "symbol": str(fields["Symbol"]).strip(),
                        "ensembl_id": "",
                        "name": str(fields["description"] or ""),
                        "aliases": str(fields["Aliases"] or ""),
                        "designations": str(fields["other_designations"] or ""),
                        "map_location": str(fields["map_location"] or ""),
                    }
                )
    return records, downloaded


def _gene_info_records(path: Path, taxid: str) -> list[dict[str, str]]:
    """Records of NCBI's ``gene_info`` (tab-separated, ``-`` for empty; synonyms joined by ``, `` as in
    NCBI's tabular export, designations kept ``|``-separated; the first Ensembl id of ``dbXrefs``)."""
    records = []
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        reader.fieldnames = [f.lstrip("#") for f in reader.fieldnames or []]
        for row in reader:
            if row["tax_id"] != taxid:
                continue
            get = {k: ("" if v == "-" else v) for k, v in row.items()}
            xrefs = [x.split(":", 1)[1] for x in get["dbXrefs"].split("|") if x.startswith("Ensembl:")]
            records.append(
                {
                    "gene_id": get["GeneID"],
                    "symbol": get["Symbol"].strip(),
                    "ensembl_id": xrefs[0] if xrefs else "",
                    "name": get["description"],
                    "aliases": ", ".join(a for a in get["Synonyms"].split("|") if a),
                    "designations": get["Other_designations"],
                    "map_location": get["map_location"],
                }
            )
    return records


def read_ncbi(species: str, paths: Sequence[Path], copied_from: str = "", download_date: str = "") -> Table:
    """One record per GeneID (sorted by GeneID) from gene_info files or goatools copies, first file first."""
    taxid, latin = SPECIES[species]
    by_id: dict[int, tuple[str, ...]] = {}
    files, dates = [], []
    for path in paths:
        if path.suffix == ".py":
            records, date = _goatools_records(path)
            dates.append(date)
            form = "NCBI Gene tabular export"
        else:
            records = _gene_info_records(path, taxid)
            form = "NCBI gene_info"
        files.append(f"{_shown(path) if copied_from else path.name} ({len(records)} genes, {form})")
        for rec in records:
            by_id.setdefault(int(rec["gene_id"]), tuple(rec[c] for c in NCBI_COLUMNS))
    date = download_date or (dates[0] if dates and len(set(dates)) == 1 else "")
    if not date:
        sys.exit(f"make_gene_tables: pass --ncbi-date YYYY-MM-DD (the day the {species} files were downloaded)")
    table = Table(NCBI_COLUMNS, [by_id[k] for k in sorted(by_id)])
    if copied_from:
        # the name and version mmgene reported before the tables were its own (cache keys depend on them)
        name, version = "ncbi-gene-table (goatools)", f"NCBI Gene {latin.lower()} table downloaded {date}; {copied_from}"
    else:
        name, version = "ncbi-gene-table", f"NCBI Gene {latin.lower()} gene_info downloaded {date}"
    table.meta = {
        "table": f"{species} NCBI Gene records, one per GeneID",
        "name": name,
        "version": version,
        "source": f"NCBI Gene (https://www.ncbi.nlm.nih.gov/gene), {latin} (taxon {taxid}), downloaded {date}",
        "file": (f"{copied_from}: " if copied_from else "") + "; ".join(files),
        "ensembl_id": "from gene_info dbXrefs" if any(r[2] for r in table.rows) else "not in the source (empty)",
        "rows": str(len(table.rows)),
    }
    return table


def write_table(table: Table, path: Path, command: str) -> None:
    """``# key: value`` lines, a header row and tab-separated rows, gzip-compressed without a time stamp."""
    lines = [f"# {key}: {value}" for key, value in {**table.meta, "made by": command}.items()]
    lines.append("\t".join(table.columns))
    for row in table.rows:
        bad = [v for v in row if "\t" in v or "\n" in v or "\r" in v]
        if bad:
            sys.exit(f"make_gene_tables: a value holds a tab or a line break: {bad[0]!r} (row {row[:2]})")
        lines.append("\t".join(row))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    tmp.replace(path)
    print(f"{path}: {len(table.rows)} rows, {path.stat().st_size / 1e6:.2f} MB")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mmgene" / "_data")
    parser.add_argument("--from-installed", action="store_true", help="Use the copies inside celltypist and goatools.")
    parser.add_argument("--gencode", type=Path, help="GENCODE human GTF (.gtf[.gz]) or ENSG,SYMBOL CSV.")
    parser.add_argument("--gencode-version", help="GENCODE release, e.g. v44 (default: from the file).")
    parser.add_argument("--ncbi-human", type=Path, nargs="+", default=[], help="gene_info or goatools genes_NCBI_9606_*.py")
    parser.add_argument("--ncbi-mouse", type=Path, nargs="+", default=[], help="gene_info or goatools genes_NCBI_10090_*.py")
    parser.add_argument("--ncbi-date", default="", help="Day the gene_info files were downloaded (YYYY-MM-DD).")
    args = parser.parse_args(argv)
    command = "tools/make_gene_tables.py " + " ".join(
        a if not Path(a).is_absolute() else Path(a).name for a in (argv if argv is not None else sys.argv[1:]) if a
    )
    ncbi: dict[str, tuple[list[Path], str]] = {"human": (args.ncbi_human, ""), "mouse": (args.ncbi_mouse, "")}
    gencode, gencode_from = args.gencode, ""
    if args.from_installed:
        gencode, gencode_from = _package_file("celltypist", CELLTYPIST_GENCODE)
        for species, names in GOATOOLS_FILES.items():
            found = [_package_file("goatools", Path("test_data") / n) for n in names]
            ncbi[species] = ([p for p, _ in found], found[0][1])
    if gencode is None and not any(paths for paths, _ in ncbi.values()):
        parser.error("nothing to do: pass --from-installed, --gencode or --ncbi-human/--ncbi-mouse")
    if gencode is not None:
        write_table(read_gencode(gencode, args.gencode_version, gencode_from), args.out / "gene_ids_human.tsv.gz", command)
    for species, (paths, copied_from) in ncbi.items():
        if paths:
            table = read_ncbi(species, paths, copied_from, args.ncbi_date)
            write_table(table, args.out / f"ncbi_genes_{species}.tsv.gz", command)


if __name__ == "__main__":
    main()
