"""The application forms' reading of uploads (instances.app_forms.read_uploads): what reaches the service
layer's ``files``, and what is refused before it, each problem naming its file."""

import base64

from django.core.files.uploadedfile import SimpleUploadedFile

from instances import app_forms
from instances.app_forms import read_uploads

YAML = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"


def test_yaml_files_are_text_and_named_yaml():
    files, errors = read_uploads(
        "yaml",
        [
            SimpleUploadedFile("a.yaml", YAML),
            SimpleUploadedFile("b.YML", YAML),
            SimpleUploadedFile("c.json", YAML),
            SimpleUploadedFile("d.yaml", b"\xff\xfe"),
        ],
    )
    assert files == {"a.yaml": YAML.decode(), "b.YML": YAML.decode()}
    assert errors == ["c.json: Kubernetes YAML files are named *.yaml or *.yml.", "d.yaml is not UTF-8 text."]


def test_a_chart_is_one_packaged_archive_kept_as_base64():
    files, errors = read_uploads("helm", [SimpleUploadedFile("web-1.0.0.tgz", b"\x1f\x8b binary")])
    assert errors == [] and files == {"web-1.0.0.tgz": base64.b64encode(b"\x1f\x8b binary").decode()}
    _, errors = read_uploads("helm", [SimpleUploadedFile("values.yaml", YAML)])
    assert errors == [
        "values.yaml: a Helm chart is uploaded as one packaged chart (a .tgz from helm package)."
    ]
    _, errors = read_uploads(
        "helm", [SimpleUploadedFile("a.tgz", b"x"), SimpleUploadedFile("b.tar.gz", b"y")]
    )
    assert errors == ["Upload one packaged chart (.tgz), not several."]


def test_reading_is_bounded_per_file_and_in_all(monkeypatch):
    monkeypatch.setattr(app_forms, "UPLOAD_READ_LIMIT", 10)
    monkeypatch.setattr(app_forms, "UPLOAD_TOTAL_LIMIT", 15)
    big = SimpleUploadedFile("big.yaml", b"x" * 11)
    files, errors = read_uploads("yaml", [big, SimpleUploadedFile("ok.yaml", b"a: 1")])
    assert files == {"ok.yaml": "a: 1"} and errors == ["big.yaml is larger than 0 MiB."]
    lying = SimpleUploadedFile("lying.yaml", b"y" * 11)
    lying.size = 1  # a size that does not match what is read
    assert read_uploads("yaml", [lying])[1] == ["lying.yaml is larger than 0 MiB."]
    many = [SimpleUploadedFile(f"f{i}.yaml", b"z" * 6) for i in range(3)]
    files, errors = read_uploads("yaml", many)
    assert sorted(files) == ["f0.yaml", "f1.yaml"] and errors == ["The files are larger than 0 MiB in all."]
