from matrixwatch.cli import main

main()
