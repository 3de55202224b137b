from msaug.cli import main

main()
