from payretry.cli import main

main()
