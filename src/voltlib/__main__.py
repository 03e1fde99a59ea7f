from voltlib.cli.main import app

app()
