from distmi.cli import main

main()
