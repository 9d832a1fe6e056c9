from cc.adapter.cli import entry

entry()
