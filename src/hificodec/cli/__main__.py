from hificodec.cli.app import main

main(prog_name="hfc")
